//! A raw HTTP/1.1 client over TCP: requests written byte for byte, as no
//! HTTP library would write them, and answers read as they came.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and fields, as sent.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The value of the first field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection written and read byte for byte.
pub struct RawConnection {
    stream: TcpStream,
    read: Vec<u8>,
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            read: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; `false` once the peer closed (or reset) the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.read.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next answer (framed by `Content-Length` or `chunked`, else read
    /// to the close), or `None` if the connection closed first or nothing
    /// whole came within five seconds.
    pub async fn response(&mut self) -> Option<RawResponse> {
        tokio::time::timeout(Duration::from_secs(5), self.read_response())
            .await
            .ok()
            .flatten()
    }

    async fn read_response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(at) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.read[..head_end - 4]).into_owned();
        self.read.drain(..head_end);
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let mut response = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        let no_body = matches!(status, 100..=199 | 204 | 304);
        if no_body {
            return Some(response);
        }
        if let Some(length) = response
            .header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
        {
            while self.read.len() < length {
                if !self.fill().await {
                    return None;
                }
            }
            response.body = self.read.drain(..length).collect();
        } else if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let Some(line_end) = self.read.windows(2).position(|w| w == b"\r\n") else {
                    if !self.fill().await {
                        return None;
                    }
                    continue;
                };
                let size_text = String::from_utf8_lossy(&self.read[..line_end]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
                while self.read.len() < line_end + 2 + size + 2 {
                    if !self.fill().await {
                        return None;
                    }
                }
                let chunk: Vec<u8> = self.read.drain(..line_end + 2 + size + 2).collect();
                response
                    .body
                    .extend_from_slice(&chunk[line_end + 2..line_end + 2 + size]);
                if size == 0 {
                    break;
                }
            }
        } else {
            while self.fill().await {}
            response.body = std::mem::take(&mut self.read);
        }
        Some(response)
    }

    /// Whether the peer closes the connection within `within` (reading and
    /// dropping whatever it sends first).
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, async { while self.fill().await {} })
            .await
            .is_ok()
    }
}

/// Sends one raw request on a new connection and reads its answer.
pub async fn raw_request(addr: SocketAddr, request: &str) -> RawResponse {
    let mut connection = RawConnection::open(addr).await;
    connection.send(request.as_bytes()).await;
    connection
        .response()
        .await
        .unwrap_or_else(|| panic!("no answer to {request:?}"))
}
