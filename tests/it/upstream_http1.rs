//! The gateway's HTTP/1.1 client side against an upstream that writes its
//! answers byte by byte as scripted: chunked and close-delimited bodies,
//! informational answers, answers before the request body is all sent,
//! and answers that cannot be forwarded (a clean `502`, and the gateway
//! keeps serving).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the scripted upstream saw.
#[derive(Clone, Default)]
struct Seen {
    /// Each request's head and body, as received (bodies still framed).
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<usize>>,
}

impl Seen {
    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn request(&self, n: usize) -> String {
        self.requests.lock().unwrap()[n].clone()
    }
}

/// How the scripted upstream answers one request.
#[derive(Clone)]
struct Answer {
    bytes: &'static [u8],
    /// Answer as soon as the head is read, without reading a body.
    before_body: bool,
    /// Close the connection after answering.
    close: bool,
    /// Wait this long before answering.
    after: Duration,
}

fn answer(bytes: &'static [u8]) -> Answer {
    Answer {
        bytes,
        before_body: false,
        close: false,
        after: Duration::ZERO,
    }
}

/// The answer most scripts end with.
fn ok() -> Answer {
    answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
}

impl Answer {
    fn closing(self) -> Self {
        Self { close: true, ..self }
    }

    fn before_body(self) -> Self {
        Self {
            before_body: true,
            ..self
        }
    }

    fn after(self, wait: Duration) -> Self {
        Self { after: wait, ..self }
    }
}

/// A request body whose first part is sent and whose rest never comes
/// while the returned sender is kept.
async fn held_open_body(
    first: &'static [u8],
) -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    reqwest::Body,
) {
    let (feed, parts) = tokio::sync::mpsc::channel(1);
    feed.send(Ok(Bytes::from_static(first))).await.unwrap();
    let parts =
        futures_util::stream::unfold(
            parts,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    (feed, reqwest::Body::wrap_stream(parts.boxed()))
}

/// An upstream on a real socket that answers the n-th request it reads
/// (over all its connections) with `script[n]`, the last one repeated.
async fn scripted_upstream(script: Vec<Answer>) -> (std::net::SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let script = Arc::new(script);
    let state = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            *state.connections.lock().unwrap() += 1;
            tokio::spawn(serve_script(stream, script.clone(), state.clone()));
        }
    });
    (addr, seen)
}

async fn serve_script(mut stream: TcpStream, script: Arc<Vec<Answer>>, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head_end(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let n = {
            let mut requests = seen.requests.lock().unwrap();
            requests.push(head.clone());
            requests.len() - 1
        };
        let answer = script[n.min(script.len() - 1)].clone();
        buf.drain(..head_end);
        if !answer.before_body && !read_body(&mut stream, &mut buf, &head, &seen, n).await {
            return;
        }
        tokio::time::sleep(answer.after).await;
        if stream.write_all(answer.bytes).await.is_err() || answer.close {
            return;
        }
    }
}

async fn read_until_head_end(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads the request body the head announces (length, or chunked to its
/// last chunk), appending it as received to the recorded request.
async fn read_body(stream: &mut TcpStream, buf: &mut Vec<u8>, head: &str, seen: &Seen, n: usize) -> bool {
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let chunked = lower.contains("transfer-encoding: chunked");
    loop {
        let complete = match (length, chunked) {
            (Some(length), false) => buf.len() >= length,
            (_, true) => buf.windows(5).any(|w| w == b"0\r\n\r\n"),
            _ => true,
        };
        if complete {
            let taken = match (length, chunked) {
                (Some(length), false) => length,
                (_, true) => buf.windows(5).position(|w| w == b"0\r\n\r\n").unwrap() + 5,
                _ => 0,
            };
            let body: Vec<u8> = buf.drain(..taken).collect();
            seen.requests.lock().unwrap()[n].push_str(&String::from_utf8_lossy(&body));
            return true;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(read) => buf.extend_from_slice(&chunk[..read]),
        }
    }
}

async fn gateway_for(addr: std::net::SocketAddr) -> (Gateway, String) {
    let gateway = Gateway::start(&config_toml(addr, "")).await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    (gateway, token)
}

async fn get(client: &reqwest::Client, gateway: &Gateway, token: &str, path: &str) -> reqwest::Response {
    client
        .get(gateway.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_chunked_answer_is_decoded_and_its_connection_reused() {
    let (addr, seen) = scripted_upstream(vec![answer(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n\
          5;name=value\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nx-trailer: dropped\r\n\r\n",
    )])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    for _ in 0..3 {
        let response = get(&client, &gateway, &token, "/chunked").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("x-trailer").is_none());
        assert_eq!(response.text().await.unwrap(), "hello, world");
    }
    assert_eq!(
        seen.connections(),
        1,
        "the connection is kept after a chunked body"
    );
}

#[tokio::test]
async fn an_answer_without_a_length_ends_with_its_connection() {
    let (addr, seen) = scripted_upstream(vec![answer(
        b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nto the end of the connection",
    )
    .closing()])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    for _ in 0..2 {
        let response = get(&client, &gateway, &token, "/old").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "to the end of the connection");
    }
    assert_eq!(
        seen.connections(),
        2,
        "a close-delimited body is not followed by a reuse"
    );
}

#[tokio::test]
async fn informational_answers_are_skipped() {
    let (addr, _seen) = scripted_upstream(vec![answer(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n\
          HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\nmade",
    )])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let response = get(&api(), &gateway, &token, "/make").await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.text().await.unwrap(), "made");
}

#[tokio::test]
async fn a_head_answer_has_no_body_and_keeps_its_connection() {
    let (addr, seen) =
        scripted_upstream(vec![answer(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")]).await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    for _ in 0..2 {
        let response = client
            .head(gateway.url("/file"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-length"], "1000");
    }
    assert!(seen.request(1).starts_with("HEAD /file HTTP/1.1\r\n"));
    assert_eq!(seen.connections(), 1);
}

#[tokio::test]
async fn answers_that_cannot_be_forwarded_are_a_502_and_the_gateway_goes_on() {
    for bad in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"HTTP/1.1 999999 Odd\r\ncontent-length: 0\r\n\r\n",
    ] {
        let (addr, _seen) = scripted_upstream(vec![answer(bad).closing(), ok()]).await;
        let (gateway, token) = gateway_for(addr).await;
        let response = get(&api(), &gateway, &token, "/bad").await;
        let case = String::from_utf8_lossy(bad);
        assert_eq!(response.status(), 502, "{case}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "upstream_unavailable", "{case}");
        let next = get(&api(), &gateway, &token, "/next").await;
        assert_eq!(next.status(), 200, "{case}");
        assert_eq!(next.text().await.unwrap(), "ok");
    }
}

#[tokio::test]
async fn a_malformed_chunked_body_is_cut_short_not_passed_on() {
    let (addr, seen) = scripted_upstream(vec![
        answer(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n"),
        ok(),
    ])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    // The head may already be on its way when the body breaks: the client
    // sees the exchange fail either way, never a body that looks whole.
    let outcome = api().get(gateway.url("/broken")).bearer_auth(&token).send().await;
    if let Ok(response) = outcome {
        assert_eq!(response.status(), 200, "the head was fine");
        assert!(response.text().await.is_err(), "the client sees the body fail");
    }
    let next = get(&api(), &gateway, &token, "/next").await;
    assert_eq!(next.text().await.unwrap(), "ok");
    assert_eq!(seen.connections(), 2, "the broken connection is not reused");
}

#[tokio::test]
async fn with_both_lengths_the_chunked_framing_wins_and_the_connection_is_not_reused() {
    let (addr, seen) = scripted_upstream(vec![answer(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n6\r\nsix ok\r\n0\r\n\r\n",
    )])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    for _ in 0..2 {
        let response = get(&client, &gateway, &token, "/both").await;
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(response.text().await.unwrap(), "six ok");
    }
    assert_eq!(seen.connections(), 2);
}

#[tokio::test]
async fn request_bodies_go_up_with_their_length_or_chunked() {
    let (addr, seen) = scripted_upstream(vec![ok()]).await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    let sized = client
        .post(gateway.url("/sized"))
        .bearer_auth(&token)
        .header("expect", "100-continue")
        .body("twelve bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(sized.text().await.unwrap(), "ok");
    let pieces = futures_util::stream::iter(
        ["one,", "two,", "three"].map(|p| Ok::<_, std::io::Error>(Bytes::from(p))),
    );
    let streamed = client
        .put(gateway.url("/streamed"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.text().await.unwrap(), "ok");

    let sized = seen.request(0).to_ascii_lowercase();
    assert!(sized.starts_with("post /sized http/1.1\r\n"), "{sized}");
    assert!(sized.contains("content-length: 12\r\n"), "{sized}");
    assert!(
        !sized.contains("expect:"),
        "the gateway answered Expect itself: {sized}"
    );
    assert!(sized.ends_with("\r\n\r\ntwelve bytes"), "{sized}");
    let streamed = seen.request(1);
    assert!(
        streamed
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked\r\n"),
        "{streamed}"
    );
    let body = &streamed[streamed.find("\r\n\r\n").unwrap() + 4..];
    let decoded: String = body
        .split("\r\n")
        .collect::<Vec<_>>()
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| pair[1])
        .collect();
    assert_eq!(decoded, "one,two,three", "{body:?}");
    assert_eq!(seen.connections(), 1);
}

#[tokio::test]
async fn an_answer_before_the_body_is_sent_is_forwarded() {
    let (addr, seen) = scripted_upstream(vec![
        answer(b"HTTP/1.1 413 Content Too Large\r\ncontent-length: 8\r\n\r\ntoo big!").before_body(),
        ok(),
    ])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let (feed, body) = held_open_body(b"the first part").await;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        api()
            .post(gateway.url("/upload"))
            .bearer_auth(&token)
            .body(body)
            .send(),
    )
    .await
    .expect("the answer comes without the rest of the body")
    .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.text().await.unwrap(), "too big!");
    drop(feed);
    let next = get(&api(), &gateway, &token, "/next").await;
    assert_eq!(next.text().await.unwrap(), "ok");
    assert_eq!(
        seen.connections(),
        2,
        "a connection with half a request on it is not reused"
    );
}

#[tokio::test]
async fn a_connection_left_with_half_a_request_body_is_never_reused() {
    // The upstream answers late, never reading the body: by then the
    // gateway has given up on the request (timeout_secs = 2).
    let (addr, seen) = scripted_upstream(vec![
        answer(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate")
            .before_body()
            .after(Duration::from_millis(2500)),
        ok(),
    ])
    .await;
    let (gateway, token) = gateway_for(addr).await;
    let (feed, body) = held_open_body(b"half of it;").await;
    let timed_out = api()
        .post(gateway.url("/upload"))
        .bearer_auth(&token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 504);
    drop(feed);
    // Past the late answer: had the connection gone back to the idle list,
    // the next request would follow half a body on it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let next = get(&api(), &gateway, &token, "/next").await;
    assert_eq!(next.text().await.unwrap(), "ok");
    assert!(
        seen.request(1).starts_with("GET /next HTTP/1.1\r\n"),
        "{:?}",
        seen.request(1)
    );
    assert_eq!(seen.connections(), 2);
}

#[tokio::test]
async fn a_request_a_reused_connection_drops_unanswered_is_sent_again_only_if_idempotent() {
    // Closed without a word, as an upstream closing an idle connection
    // just as a request arrives on it.
    let dropped = answer(b"").before_body().closing();
    let (addr, seen) = scripted_upstream(vec![ok(), dropped.clone(), ok(), dropped, ok()]).await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    assert_eq!(
        get(&client, &gateway, &token, "/first")
            .await
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let again = get(&client, &gateway, &token, "/again").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.text().await.unwrap(), "ok");
    assert!(seen.request(1).starts_with("GET /again "));
    assert!(
        seen.request(2).starts_with("GET /again "),
        "sent once more, on a new connection"
    );
    assert_eq!(seen.connections(), 2);

    let once = client
        .post(gateway.url("/once"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(once.status(), 502, "a POST is not sent twice");
    assert!(seen.request(3).starts_with("POST /once "));
    assert_eq!(seen.requests.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn a_request_whose_body_was_sent_is_never_sent_again_and_fails_at_once() {
    // Reads the whole request, body and all, then closes without a word.
    let read_then_closed = answer(b"").closing();
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE] {
        let (addr, seen) = scripted_upstream(vec![ok(), read_then_closed.clone(), ok()]).await;
        let toml = config_toml(addr, "").replace("timeout_secs = 2", "timeout_secs = 10");
        let gateway = Gateway::start(&toml).await;
        let token = password_grant(&gateway.url("/management/token"), "alice").await;
        let client = api();
        assert_eq!(
            get(&client, &gateway, &token, "/first")
                .await
                .text()
                .await
                .unwrap(),
            "ok"
        );
        let started = std::time::Instant::now();
        let sent = client
            .request(method.clone(), gateway.url("/item"))
            .bearer_auth(&token)
            .body("the body")
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 502, "{method}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{method}: answered at once, not at the timeout: {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            seen.requests.lock().unwrap().len(),
            2,
            "{method}: nothing was sent again"
        );
        let request = seen.request(1);
        assert!(
            request.starts_with(&format!("{method} /item HTTP/1.1\r\n")) && request.ends_with("the body"),
            "{request:?}"
        );
        let next = get(&client, &gateway, &token, "/next").await;
        assert_eq!(next.text().await.unwrap(), "ok");
        assert!(
            seen.request(2).starts_with("GET /next HTTP/1.1\r\n"),
            "{:?}",
            seen.request(2)
        );
    }
}

#[tokio::test]
async fn an_http2_request_with_a_streamed_body_is_never_sent_again() {
    let (addr, seen) = scripted_upstream(vec![ok(), answer(b"").closing(), ok()]).await;
    let (gateway, token) = gateway_for(addr).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let first = get(&client, &gateway, &token, "/first").await;
    assert_eq!(first.version(), reqwest::Version::HTTP_2);
    assert_eq!(first.text().await.unwrap(), "ok");
    let pieces =
        futures_util::stream::iter(["no ", "length"].map(|p| Ok::<_, std::io::Error>(Bytes::from(p))));
    let put = client
        .put(gateway.url("/item"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 502, "not another request's answer");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].starts_with("PUT /item HTTP/1.1\r\n"), "{requests:?}");
}

#[tokio::test]
async fn a_body_less_request_is_sent_again_whole() {
    // The upstream closes a kept connection as the next request arrives.
    let (addr, seen) = scripted_upstream(vec![ok(), answer(b"").before_body().closing(), ok()]).await;
    let (gateway, token) = gateway_for(addr).await;
    let client = api();
    assert_eq!(
        get(&client, &gateway, &token, "/first")
            .await
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let again = client
        .delete(gateway.url("/item?x=1"))
        .bearer_auth(&token)
        .header("x-marker", "same request")
        .send()
        .await
        .unwrap();
    assert_eq!(again.text().await.unwrap(), "ok");
    assert_eq!(
        seen.request(1),
        seen.request(2),
        "the very same request, once more"
    );
    assert!(seen.request(2).starts_with("DELETE /item?x=1 HTTP/1.1\r\n"));
    assert!(seen.request(2).contains("x-marker: same request\r\n"));
}

/// An upstream that answers a chunked body whose trailer section never
/// ends (a line of `trailer_line` bytes, then bytes without a line end),
/// and reports how much it managed to write before the gateway closed.
async fn endless_trailer_upstream(
    trailer_line: usize,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, written) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_until_head_end(&mut stream, &mut buf).await.unwrap();
        let mut head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n".to_vec();
        head.extend(std::iter::repeat_n(b'a', trailer_line));
        head.extend_from_slice(b"\r\n");
        let mut total = 0;
        if stream.write_all(&head).await.is_ok() {
            total = head.len();
            let endless = vec![b'b'; 64 * 1024];
            while total < 256 << 20 && stream.write_all(&endless).await.is_ok() {
                total += endless.len();
            }
        }
        let _ = report.send(total);
    });
    (addr, written)
}

#[tokio::test]
async fn an_endless_trailer_section_is_cut_off() {
    for trailer_line in [16_383, 16_384, 16_382, 20_000] {
        let (addr, written) = endless_trailer_upstream(trailer_line).await;
        let (gateway, token) = gateway_for(addr).await;
        let outcome = api().get(gateway.url("/t")).bearer_auth(&token).send().await;
        if let Ok(response) = outcome {
            assert!(
                response.bytes().await.is_err(),
                "{trailer_line}: the body never ends well"
            );
        }
        let written = tokio::time::timeout(Duration::from_secs(20), written)
            .await
            .expect("the gateway closes the connection")
            .unwrap();
        assert!(
            written < 16 << 20,
            "{trailer_line}: the gateway read {written} bytes of trailers"
        );
    }
}

#[tokio::test]
async fn answers_with_a_bare_lf_or_a_status_out_of_range_are_refused() {
    for bad in [
        &b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: pwn=1\r\ncontent-length: 2\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\n\r\nok",
        b"HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 099 Odd\r\ncontent-length: 2\r\n\r\nok",
    ] {
        let (addr, _seen) = scripted_upstream(vec![answer(bad).closing(), ok()]).await;
        let (gateway, token) = gateway_for(addr).await;
        let response = get(&api(), &gateway, &token, "/bad").await;
        let case = String::from_utf8_lossy(bad);
        assert_eq!(response.status(), 502, "{case}");
        assert!(response.headers().get("set-cookie").is_none(), "{case}");
        let next = get(&api(), &gateway, &token, "/next").await;
        assert_eq!(next.text().await.unwrap(), "ok", "{case}");
    }
    // The edges of the range pass.
    for (good, status) in [
        (&b"HTTP/1.1 599 Edge\r\ncontent-length: 2\r\n\r\nok"[..], 599),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            200,
        ),
    ] {
        let (addr, _seen) = scripted_upstream(vec![answer(good)]).await;
        let (gateway, token) = gateway_for(addr).await;
        assert_eq!(get(&api(), &gateway, &token, "/edge").await.status(), status);
    }
}

/// An upstream that switches protocols whenever asked, or not asked, and
/// then reads the tunnel as HTTP/1.1, recording every request.
const ALWAYS_SWITCHES: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n";

#[tokio::test]
async fn only_websocket_upgrades_are_forwarded() {
    let (addr, seen) = scripted_upstream(vec![answer(ALWAYS_SWITCHES).before_body()]).await;
    let (gateway, token) = gateway_for(addr).await;
    for (upgrade, extra) in [
        ("h2c", "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"),
        ("anything/1.0", ""),
        ("H2C", ""),
    ] {
        let mut client = RawConnection::open(gateway.addr).await;
        client
            .send(
                format!(
                    "GET /up HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nUpgrade: {upgrade}\r\n{extra}\
                     Connection: Upgrade, HTTP2-Settings\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        let answer = client.response().await.expect("an answer");
        assert_eq!(answer.status, 502, "{upgrade}: no tunnel: {}", answer.head);
        // What would have gone through the tunnel reaches the gateway as a
        // request of its own, and is checked as one.
        client
            .send(
                b"GET /smuggled HTTP/1.1\r\nHost: gw\r\nX-Forwarded-User: root\r\nConnection: close\r\n\r\n",
            )
            .await;
        if let Some(next) = client.response().await {
            assert_eq!(next.status, 401, "{upgrade}");
        }
    }
    let requests = seen.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        let lower = request.to_ascii_lowercase();
        assert!(lower.starts_with("get /up http/1.1\r\n"), "{request}");
        assert!(
            !lower.contains("upgrade"),
            "the upgrade is not asked of the upstream: {request}"
        );
        assert!(!lower.contains("http2-settings"), "{request}");
    }
}

#[tokio::test]
async fn a_route_may_allow_another_upgrade() {
    let (addr, seen) = scripted_upstream(vec![answer(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n",
    )
    .before_body()])
    .await;
    let toml = config_toml(addr, "")
        + &format!("[[routes]]\npath_prefix = \"/foo\"\nurl = \"http://{addr}\"\nupgrades = [\"foo\"]\n");
    let gateway = Gateway::start(&toml).await;
    let token = password_grant(&gateway.url("/management/token"), "alice").await;
    for (path, status) in [("/foo/x", 101), ("/other", 502)] {
        let mut client = RawConnection::open(gateway.addr).await;
        client
            .send(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nUpgrade: foo\r\nConnection: upgrade\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
        assert_eq!(client.response().await.unwrap().status, status, "{path}");
    }
    let requests = seen.requests.lock().unwrap().clone();
    assert!(
        requests[0].to_ascii_lowercase().contains("upgrade: foo\r\n"),
        "{requests:?}"
    );
    assert!(
        !requests[1].to_ascii_lowercase().contains("upgrade"),
        "{requests:?}"
    );
}
