//! The smallest HTTP/1.1 responder that a Prometheus scraper needs: `GET /metrics`, one
//! response per connection, then close.
//!
//! Requests are untrusted bytes: a request is read up to [`MAX_REQUEST`] bytes and a deadline,
//! anything unexpected gets a one-line error, and nothing in here panics on what a peer sends.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_net::{TcpListener, TcpStream};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use phalanx_runtime::Task;

use super::{Metrics, MetricsError};

/// The largest request (request line and headers) read; larger ones get 431.
pub(super) const MAX_REQUEST: usize = 8 * 1024;
/// Connections served at once; more are closed without an answer.
const MAX_CONNECTIONS: usize = 32;
/// How long one connection may take, from accept to the last byte written.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// A running metrics endpoint; dropping it stops accepting scrapes.
#[must_use = "dropping the server stops it at once"]
pub struct MetricsServer {
    local_addr: SocketAddr,
    _accept: Task<()>,
}

impl MetricsServer {
    /// The address the endpoint listens on (with the real port if port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

pub(super) async fn serve(
    metrics: &'static Metrics,
    addr: SocketAddr,
) -> Result<MetricsServer, MetricsError> {
    let bind = |source| MetricsError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let local_addr = listener.local_addr().map_err(bind)?;
    let accept = phalanx_runtime::spawn(accept(listener, metrics));
    tracing::info!(%local_addr, "serving metrics");
    Ok(MetricsServer {
        local_addr,
        _accept: accept,
    })
}

async fn accept(listener: TcpListener, metrics: &'static Metrics) {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait a little instead of spinning.
                tracing::warn!(%error, "metrics listener could not accept");
                phalanx_runtime::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let active = active.clone();
        phalanx_runtime::spawn(async move {
            let _ = phalanx_runtime::timeout(CONNECTION_DEADLINE, respond(stream, metrics)).await;
            active.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}

/// Reads one request and writes one response. I/O errors end the connection quietly: the
/// peer has gone, and there is nobody left to tell.
async fn respond(mut stream: TcpStream, metrics: &'static Metrics) -> std::io::Result<()> {
    let answer = match read_request(&mut stream).await? {
        Head::Complete(head) => route(&head),
        Head::TooLarge => Answer::Error(431, "request header fields too large"),
        Head::Truncated => Answer::Error(400, "incomplete request"),
        Head::Empty => return Ok(()),
    };
    let response = match answer {
        Answer::Metrics { with_body } => {
            let body = phalanx_runtime::spawn_blocking(move || metrics.render()).await;
            response(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
                with_body,
            )
        }
        Answer::Error(status, message) => response(
            status,
            "text/plain; charset=utf-8",
            &format!("{message}\n"),
            true,
        ),
    };
    stream.write_all(&response).await?;
    stream.flush().await?;
    stream.close().await
}

/// What a request read from the peer amounted to.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The bytes up to the blank line that ends the headers.
    Complete(Vec<u8>),
    /// No blank line within [`MAX_REQUEST`] bytes.
    TooLarge,
    /// The peer closed the connection in the middle of a request.
    Truncated,
    /// The peer closed the connection without sending anything.
    Empty,
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Metrics { with_body: bool },
    Error(u16, &'static str),
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(if head.is_empty() {
                Head::Empty
            } else {
                Head::Truncated
            });
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = header_end(&head) {
            head.truncate(end);
            return Ok(Head::Complete(head));
        }
        if head.len() >= MAX_REQUEST {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the headers end (before the blank line), if they do within the limit.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let limit = bytes.len().min(MAX_REQUEST);
    let bytes = &bytes[..limit];
    let crlf = bytes.windows(4).position(|window| window == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|window| window == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Decides the answer from the request line; headers are not needed for anything.
fn route(head: &[u8]) -> Answer {
    let line_end = head
        .iter()
        .position(|&byte| byte == b'\n')
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Answer::Error(400, "bad request");
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::Error(400, "bad request");
    };
    if !version.starts_with("HTTP/1.") {
        return Answer::Error(400, "bad request");
    }
    let path = target.split('?').next().unwrap_or(target);
    let with_body = match method {
        "GET" => true,
        "HEAD" => false,
        _ => return Answer::Error(405, "method not allowed"),
    };
    if path == "/metrics" {
        Answer::Metrics { with_body }
    } else {
        Answer::Error(404, "not found")
    }
}

fn response(status: u16, content_type: &str, body: &str, with_body: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        let cases: [(&[u8], Answer); 7] = [
            (
                b"GET /metrics HTTP/1.1",
                Answer::Metrics { with_body: true },
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0",
                Answer::Metrics { with_body: true },
            ),
            (
                b"HEAD /metrics HTTP/1.1",
                Answer::Metrics { with_body: false },
            ),
            (b"GET / HTTP/1.1", Answer::Error(404, "not found")),
            (
                b"POST /metrics HTTP/1.1",
                Answer::Error(405, "method not allowed"),
            ),
            (b"GET /metrics", Answer::Error(400, "bad request")),
            (b"\xff\xfe garbage", Answer::Error(400, "bad request")),
        ];
        for (head, expected) in cases {
            assert_eq!(route(head), expected, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn finds_the_end_of_the_headers() {
        assert_eq!(
            header_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"),
            Some(23)
        );
        assert_eq!(header_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nHost"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = header_end(&bytes);
            let answer = route(&bytes);
            let (status, with_body) = match answer {
                Answer::Metrics { with_body } => (200, with_body),
                Answer::Error(status, _) => (status, true),
            };
            let _ = response(status, "text/plain", "x", with_body);
        }
    }

    #[test]
    fn arbitrary_requests_never_panic_fuzz() {
        bolero::check!()
            .with_iterations(2_000)
            .for_each(|bytes: &[u8]| {
                let _ = header_end(bytes);
                let _ = route(bytes);
            });
    }
}
